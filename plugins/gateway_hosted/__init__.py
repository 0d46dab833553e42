"""Built-in plugin "hosted": fine-tuning and serving through hosted APIs with litellm."""
