"""The step every family's inference ends with: probabilities on the model grid -> masks on the input grid."""
