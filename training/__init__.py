"""sgdepth_training: the offline half of sgdepth_ros (datasets, synthetic world, trainer, evaluators).

Installed under the import name ``sgdepth_training`` (the checkout folder is ``training/``). It may import
``sgdepth_ros``; the runtime (``sgdepth_ros`` and the node) never imports it except through the CLI's offline commands.
"""
