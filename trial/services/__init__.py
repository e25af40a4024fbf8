"""Trial use cases. Each one checks role and object permission, validates, and writes in one transaction."""
