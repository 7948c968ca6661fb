"""The web front end: `ohlora serve` (cli), the FastAPI app and its API (server,
schemas), the page with 오로라's SVG avatar (static/). No model code here: the app
talks to any object with the `ohlora.engine.result.ChatEngine` shape."""
