"""`dlopt serve RUN`: a run's model over HTTP in TensorFlow Serving's REST shape, so clients
written for TF Serving work. Built on Starlette and uvicorn, with concurrent requests batched.

  inputs.py    JSON instances -> the model's batch: arrays, base64 images, text, table rows
  batching.py  concurrent requests gathered into one model call (a maximum size and wait)
  app.py       the routes: predict, model status and signature, health
"""
