"""SAM-UNet's glue: 8-bit windowing and SAM normalisation, box/point prompts and boxes from masks, the prompted
slice predictor, the SA-Med2D layout, training samples and step, starting from SAM's weights. Segmenting from
Python is :func:`bundles.segment` (``bundles.segment("sam_unet", ...)``).
"""
