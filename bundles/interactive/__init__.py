"""Interactive (click) models, family-neutral: the click session interface (``session.py``), the one reader of
clicks and boxes (``objects.py``), the click prompt check and predictor of the per-case job (``prompt_check.py``,
``predictor.py``), click simulation (``simulation.py``) and the Dice-per-click evaluation (``evaluation.py``).
A click model's family supplies its session (and, for the evaluation, its windows); the MONAI Label task is
:mod:`bundles.serving.click_task`.
"""
