"""One LightningModule per method: batch -> pure loss function -> log."""
