"""Seldon Core v1 graph nodes (one class per module) and the local graph executor (``executor/``).

``NODE_CLASSES`` maps the ``MODEL_NAME`` of a SeldonDeployment container to the import path
``seldon-core-microservice`` is started with.
"""

NODE_CLASSES: dict[str, str] = {
    "FeatureTransformer": "inference_graph.feature_transformer.FeatureTransformer",
    "ABRouter": "inference_graph.ab_router.ABRouter",
    "HybridCombiner": "inference_graph.hybrid_combiner.HybridCombiner",
    "CFModel": "inference_graph.cf_model.CFModel",
    "CBModel": "inference_graph.cb_model.CBModel",
    "HybridRecommender": "inference_graph.hybrid_recommender.HybridRecommender",
}
