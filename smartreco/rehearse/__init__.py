"""Cluster rehearsal (issue #19): run an overlay's rendered objects as containers on the local Docker engine,
so the manifests have been started once (env, ConfigMaps, Secrets, probes, securityContext, Service names)
before ``kubectl apply`` meets a real cluster.

Modules, one job each: ``render`` (``kubectl kustomize``), ``public_images`` (the declared mapping of public
images that cannot be pulled here), ``secrets`` (the Secrets the objects reference, generated per rehearsal,
never in the repo), ``translate`` (pure: rendered objects -> pods of container specs), ``seldon`` (pure: the
SeldonDeployment's predictor as the operator would make its pod, with the local executor standing in for
Seldon's), ``docker_args`` (pure: a container spec -> ``docker run`` arguments), ``rollout`` (pure: the pace
of ``apply``'s rolling update, as the operator's Deployment), ``runner`` (the engine side: network, volumes,
pods, probes, ``down``).
"""
