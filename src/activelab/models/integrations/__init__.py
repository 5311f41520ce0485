"""Optional frameworks behind the model interface, each imported only when used.

- :mod:`~activelab.models.integrations.fastai`: fastai ``Learner`` adapters
  (``fastai/<arch>`` names, :func:`~activelab.models.from_learner`); extra ``fastai``.
- :mod:`~activelab.models.integrations.huggingface`: Hugging Face image models as
  backbones (``hf/<hub id>``); extra ``hf``.
- :mod:`~activelab.models.integrations.lightly`: self-supervised pretraining of a
  backbone on the unlabeled pool (:func:`pretrain_backbone`); extra ``ssl``.
- :mod:`~activelab.models.integrations.ray`: the Ray Data backend of the embedding
  pass; extra ``ray``.

Importing this package imports none of them; each raises
:class:`~activelab.exceptions.MissingDependencyError` naming its extra when the framework
is missing.
"""
