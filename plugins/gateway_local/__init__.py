"""Built-in plugin "local": LoRA training with peft and a transformers+peft backend."""
