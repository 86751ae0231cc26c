"""``rigstyle train``: StyleGAN2 training inside the project (teacher distillation, face-set fine-tuning).

Modules: ``teacher`` (named teacher generators, read without running code), ``data`` (teacher and image-
folder sources), ``augment`` (DiffAugment), ``config`` (the run's settings), ``loop`` (the trainer),
``snapshot`` (atomic, resumable state), ``metrics`` (PSNR, sliced Wasserstein distance). The command
itself is ``neural_backend.cli.train``.
"""
