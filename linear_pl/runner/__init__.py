"""The run machinery: serves any LightningModule on any LightningDataModule. Keep it when you copy the template."""
