"""Is this a frontal chest radiograph? A DICOM header check and a small shipped image classifier
that every command uses to mark out-of-scope inputs (``in_scope``, ``scope_reason``)."""
