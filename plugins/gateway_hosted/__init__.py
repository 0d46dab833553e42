"""Built-in plugin "hosted" (not registered yet): fine-tuning and serving through
hosted APIs with litellm. Until its trainer and backend exist it has no entry
point, so `gateway plugins list` does not offer what nothing provides.
"""
