"""Reading back what landed in HealthImaging through its control-plane APIs (SearchImageSets, GetImageSet)."""
