"""`resdsl lsp`: the language server (pygls), for editors.

`command` is the CLI's entry (no pygls import until the server starts); `analysis` checks a
buffer and indexes what the features read (no pygls either); the feature modules turn that
into LSP answers and `server` wires them to the protocol. Nothing here imports torch.
"""
