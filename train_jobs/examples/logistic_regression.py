"""Example of uploadable training code (`aiplatform job create --template custom`): a logistic regression.

The platform calls `train_loop_per_worker(config)` in every DDP worker. `config` holds the job's free `params`
(also merged at the top level), `job` (its hyperparameters and resources), `dataset` (a pandas DataFrame) and
`target_column`. Report with `runtime.report(metrics, state)`: metrics carry `epoch` and the job's metric
(`val_accuracy` by default), `state` is what a resumed run gets back from `runtime.restore()`.
"""

import torch
from ray.train.torch import prepare_model

from train_jobs import runtime


def train_loop_per_worker(config):
    frame, target = config["dataset"], config["target_column"]
    features = torch.tensor(frame.drop(columns=[target]).to_numpy(dtype="float32"))
    features = (features - features.mean(0)) / (features.std(0) + 1e-6)
    classes = sorted(frame[target].unique().tolist(), key=str)
    labels = torch.tensor(frame[target].map({c: i for i, c in enumerate(classes)}).to_numpy())
    cut = int(len(labels) * 0.8)
    torch.manual_seed(0)
    model = prepare_model(torch.nn.Linear(features.shape[1], len(classes)))
    optimizer = torch.optim.SGD(model.parameters(), lr=config.get("lr", 0.1))
    start = 0
    state = runtime.restore()
    if state:
        runtime.unwrap(model).load_state_dict(state["model"])
        start = state["epoch"]
    for epoch in range(start, config["job"]["epochs"]):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(features[:cut]), labels[:cut])
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            accuracy = (model(features[cut:]).argmax(1) == labels[cut:]).float().mean().item()
        metrics = {"epoch": epoch + 1, "loss": loss.item(), "val_accuracy": accuracy}
        runtime.report(metrics, {"model": runtime.unwrap(model).state_dict(), "epoch": epoch + 1})
