"""The ``medseg`` console command (:mod:`bundles.console.main`): every bundle through one command, checked before
any model library loads (:mod:`bundles.console.segment`, :mod:`bundles.console.prompt_flags`)."""
