"""SAMed's glue: preprocessing (SAMed's HU window), the slice predictor, training slices and step, the
conversion of official SAM + LoRA files and the export back. Segmenting from Python is :func:`bundles.segment`
(``bundles.segment("samed_lora", ...)``).
"""
