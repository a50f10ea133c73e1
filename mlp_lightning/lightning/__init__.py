"""The Lightning side: model, LightningModule, DataModule, callbacks, checkpoint, Trainer."""
