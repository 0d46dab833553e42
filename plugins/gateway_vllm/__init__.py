"""Built-in plugin "vllm": serves base models and adapters through a vLLM server."""
