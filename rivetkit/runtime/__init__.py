"""The actor runtime: instances, contexts, state, actions and lifecycle over a driver."""
