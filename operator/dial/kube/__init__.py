"""The Kubernetes backend (`dial operator`): kopf handlers that apply the engine's plans as Trials and Jobs."""
