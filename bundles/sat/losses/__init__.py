"""SAT's losses: segmentation (Dice + BCE with query masks and deep supervision) and contrastive text losses."""
