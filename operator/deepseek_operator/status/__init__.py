"""Pure status computation: conditions with metav1.Condition semantics, phase and message."""
