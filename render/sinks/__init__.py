"""Where rendered pixels go: MP4 videos and image datasets, always written atomically."""
