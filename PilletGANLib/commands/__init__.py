"""Sub-commands of ``pilletgan``: each module registers its parser and calls into the library."""
