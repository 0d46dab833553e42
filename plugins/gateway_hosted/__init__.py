"""Built-in plugin "hosted": fine-tuning at providers and serving their models, through litellm.

- `trainer.HostedTrainer` ("hosted"): uploads, creates and polls a provider's job.
- `backend.HostedBackend` ("hosted"): serves hosted fine-tunes and provider models.
- `providers.Provider`: one `[providers.NAME]` entry, as litellm wants it.
"""
