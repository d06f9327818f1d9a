# %% [markdown]
# # Serverless ML from a notebook
#
# The whole flow with the Python SDK (`pip install "./client[report,pandas]"`): upload a DataFrame, train two
# versions of a model and watch them, read the metrics and the report, predict a DataFrame, compare the versions,
# roll back and promote. Start the local server first (`make local`), then run the cells in Jupyter or VS Code, or
# the whole file: `python docs/notebook.py --url http://127.0.0.1:3000`. Against a deployed stack, pass `--stack NAME`
# or set `SML_URL` and `SML_API_KEY`.

# %%
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from mlclient import Client

here = Path(__file__).resolve().parent if "__file__" in globals() else Path("docs").resolve()
parser = argparse.ArgumentParser(description="the SDK's whole flow against one API")
parser.add_argument("--url", help="the API (default: SML_URL, else the local server)")
parser.add_argument("--api-key", help="its key (default: SML_API_KEY; the local server's key for a local URL)")
parser.add_argument("--stack", help="a deployed stack's name instead of --url (needs sml-client[aws])")
parser.add_argument("--data", default=str(here.parent / "data" / "housing.csv"), help="a CSV with a price_k column")
parser.add_argument("--out", default="report", help="folder for the HTML report")
parser.add_argument("--name", default="notebook-houses", help="data set and model name")
args, _ = parser.parse_known_args()  # a notebook kernel passes its own arguments

sml = Client(args.url, args.api_key, stack=args.stack)
print("API:", sml.url)

# %% [markdown]
# ## Upload a DataFrame
# Up to 5 MiB goes in the request; larger data goes through a presigned URL, with a progress bar.

# %%
houses = pd.read_csv(args.data)
train_rows, new_rows = houses.iloc[:400], houses.iloc[400:405].drop(columns=["price_k"])
dataset = sml.upload(train_rows, args.name)
print(f"data set {dataset['dataset']} version {dataset['version']}: {dataset['rows']} rows")

# %% [markdown]
# ## Train and wait
# `train` starts a run and follows it (rounds, loss, time left) until it ends; a run that fails raises `RunFailed`
# with its reason. Hyperparameters are keyword arguments. Version 1 takes gradient steps; version 2 lets the
# server choose the solver (the exact least-squares solve for linear regression).

# %%
first = sml.train(args.name, "price_k", args.name, shards=2, solver="sgd", learning_rate=0.5, max_epochs=30)
second = sml.train(args.name, "price_k", args.name, shards=2)
print(first["run_id"], "->", first["model"]["version"], "|", second["run_id"], "->", second["model"]["version"])

# %% [markdown]
# ## Metrics and report

# %%
metrics = sml.metrics(second["run_id"])
print({k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)})
paths = sml.report(second["run_id"], args.out)
print("report:", paths[-1])

# %% [markdown]
# ## Predict a DataFrame
# The answer is a Series on the frame's index (a DataFrame with a probability per class for a classifier).

# %%
predictions = sml.predict(args.name, new_rows)
print(pd.concat([new_rows[["area_m2", "bedrooms"]], predictions], axis=1))
print(f"served by version {predictions.attrs['version']}")

# %% [markdown]
# ## Compare, roll back, promote

# %%
print(sml.compare(args.name))
best = second["model"]["version"]
production = next(m["production"] for m in sml.models() if m["name"] == args.name)
print("production is version", production)
if production == best:
    print("rolled back to version", sml.rollback(args.name)["version"])
print("promoted version", sml.promote(args.name, best, force=True)["version"])
