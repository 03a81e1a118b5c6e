"""SAM-Med3D's glue: preprocessing (1.5 mm, 128³ windows, z-score over voxels > 0), the click session,
click prompts and predictor for the core job, click simulation, training and evaluation."""
