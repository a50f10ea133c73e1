"""Run management, without torch: run directories, resume targets, interrupts, atomic files."""
