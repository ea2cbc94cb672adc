"""KFP components: one folder per step (component.py + README.md), thin shells over `smartreco`."""
