"""SmartReco: hybrid recommender library shared by KFP components and Seldon graph nodes."""

__version__ = "0.1.0"
