import hashlib, sys, json, torch
from safetensors.torch import load_file
from convscope.models import create_model, upgrade_state_dict
meta = json.load(open(sys.argv[1] + "/model.json"))
c, h, w = meta["input_shape"]
model = create_model(meta["model"], c, (h, w), meta["num_classes"], **meta.get("model_args", {}))
sd = upgrade_state_dict(model, load_file(sys.argv[1] + "/model.safetensors"))
hsh = hashlib.sha256()
for k in model.state_dict():
    hsh.update(k.encode()); hsh.update(sd[k].contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
print(sys.argv[1], "file", hashlib.sha256(open(sys.argv[1] + "/model.safetensors", "rb").read()).hexdigest(), "named-values", hsh.hexdigest())
