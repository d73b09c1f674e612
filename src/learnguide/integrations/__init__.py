"""Adapters to other libraries; they sit beside the data → … → report chain and only adapt at its edges."""
