"""The web channel: a storefront, the A/B experiments dashboard and the model page (``smartreco web``).

Server-side rendered (Starlette + Jinja2): the browser never talks to the graph, the app does, through
:mod:`smartreco.serving.client`, so the graph's token and URL stay on the server. A small vendored-free
script (``static/storefront.js``) swaps the recommendation list in place after a feedback; without
JavaScript the same forms post and redirect.
"""
