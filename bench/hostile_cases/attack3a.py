"""The third independent attack on issue 28, half a (cases of our own, beside the attack's): serve's run lock
and JSON errors (attack3-serve), downloads without an end (attack3-download), and run files whose recorded
digests, sizes and model arguments load_run checks before it hashes or allocates (attack3-runs). Run them with
``--only attack3-``."""

from __future__ import annotations

from ._table import Table
from ._table import _refused

# the published file's cap (RemoteFile.max_file_bytes: raw size + 1/1000 + 64 KiB) must be the reason named
CHECKS = {
    "a3:dl-1m": _refused(f"more than {(1 << 20) + (1 << 20) // 1000 + (1 << 16):,} bytes"),
    "a3:dl-64k": _refused(f"more than {(1 << 16) + (1 << 16) // 1000 + (1 << 16):,} bytes"),
}

# a run folder copied and edited, its digests recorded again (the attack's "rehashed" runs): only checks of the
# values themselves can refuse it
_COPY = ("import json, os, shutil, convscope\nfrom convscope.runs.rundir import write_manifest\n"
         "r = WS/'_o'/{name!r}\nshutil.rmtree(r, ignore_errors=True)\nshutil.copytree(WS/'run', r)\n"
         "def rehash():\n    meta = json.loads((r/'model.json').read_text())\n    del meta['sha256']\n"
         "    write_manifest(r, meta)\n")

# the app in this process: a request that fails must come back as a JSON 400 naming the problem (raised here as a
# convscope error), never a 500 or no answer
_APP = ("from fastapi.testclient import TestClient\nfrom convscope.errors import ConfigError\n"
        "from convscope.web.app import create_app\n"
        "c = TestClient(create_app([WS/'run']), base_url='http://127.0.0.1:8000')\n"
        "def answer(resp):\n    if resp.status_code == 400:\n"
        "        raise ConfigError('HTTP 400: ' + resp.json()['error'])\n"
        "    if resp.status_code != 200:\n        raise RuntimeError(f'HTTP {resp.status_code}: {resp.text[:200]}')\n"
        "    return resp\n")

# a mirror on 127.0.0.1 that answers 200 without Content-Length and never stops sending
_MIRROR = ("import hashlib, threading, os\nfrom http.server import BaseHTTPRequestHandler, ThreadingHTTPServer\n"
           "from convscope.data.sources import RemoteFile, RemoteSource, fetch\n"
           "class H(BaseHTTPRequestHandler):\n    def do_GET(self):\n        self.send_response(200)\n"
           "        self.end_headers()\n        try:\n            while True:\n"
           "                self.wfile.write(b'x' * 65536)\n        except OSError:\n            pass\n"
           "    def log_message(self, *a):\n        pass\n"
           "srv = ThreadingHTTPServer(('127.0.0.1', 0), H)\n"
           "threading.Thread(target=srv.serve_forever, daemon=True).start()\n"
           "url = f'http://127.0.0.1:{srv.server_address[1]}/'\n")


def add_cases(t: Table) -> None:
    """Every case of this unit, in the table's order."""
    slow = t.slow
    # -- attack3-runs
    t.py("attack3-runs", "load_run: model.safetensors a 50 GB sparse file",
         _COPY.format(name="a3-sparse") + "with open(r/'model.safetensors', 'r+b') as f:\n    f.truncate(50 << 30)\n"
         "convscope.load_run(r)\n", timeout=20)
    t.py("attack3-runs", "load_run: curve.png a 20 GB sparse file",
         _COPY.format(name="a3-curve") + "with open(r/'curve.png', 'r+b') as f:\n    f.truncate(20 << 30)\n"
         "convscope.load_run(r)\n", timeout=20)
    t.py("attack3-runs", "load_run: summary.json edited (digests not recorded again)",
         _COPY.format(name="a3-summ") + "(r/'summary.json').write_text('{\"test_accuracy\": 1.0}')\n"
         "convscope.load_run(r)\n")
    t.py("attack3-runs", "load_run: metrics.jsonl deleted",
         _COPY.format(name="a3-nometrics") + "os.remove(r/'metrics.jsonl')\nconvscope.load_run(r)\n")
    t.py("attack3-runs", "load_run: model.json.sha256 deleted, model.json edited",
         _COPY.format(name="a3-nodigest") + "os.remove(r/'model.json.sha256')\n"
         "meta = json.loads((r/'model.json').read_text())\nmeta['classes'][0] = 'zero'\n"
         "(r/'model.json').write_text(json.dumps(meta))\nconvscope.load_run(r)\n")
    t.py("attack3-runs", "load_run: summary.json holding Infinity (rehashed)",
         _COPY.format(name="a3-inf") + "(r/'summary.json').write_text('{\"test_loss\": Infinity}')\nrehash()\n"
         "convscope.load_run(r)\n")
    t.py("attack3-runs", "run.metrics: a line holding -Infinity (rehashed)",
         _COPY.format(name="a3-minf") + "with open(r/'metrics.jsonl', 'a') as f:\n"
         "    f.write('{\"kind\": \"epoch\", \"epoch\": 9, \"loss\": -Infinity}\\n')\nrehash()\n"
         "result = len(convscope.load_run(r).metrics)\n")
    t.py("attack3-runs", "load_run: model_args width 50,000 (rehashed)",
         _COPY.format(name="a3-width") + "meta = json.loads((r/'model.json').read_text())\n"
         "meta['model_args'] = {**meta.get('model_args', {}), 'width': 50000}\n"
         "(r/'model.json').write_text(json.dumps(meta))\nrehash()\nconvscope.load_run(r)\n", timeout=20)
    t.py("attack3-runs", "load_run: input_shape [3, 5000, 8] (rehashed)",
         _COPY.format(name="a3-shape") + "meta = json.loads((r/'model.json').read_text())\n"
         "meta['input_shape'] = [3, 5000, 8]\n(r/'model.json').write_text(json.dumps(meta))\nrehash()\n"
         "convscope.load_run(r)\n", timeout=20)
    # -- attack3-serve
    t.py("attack3-serve", "serve: confusion.png, then the same run's predict",
         _APP + "import io\nfrom PIL import Image\n"
         "assert answer(c.get('/run/run/confusion.png')).content[:4] == b'\\x89PNG'\n"
         "buf = io.BytesIO()\nImage.new('L', (28, 28), 0).point(lambda v: 255).save(buf, 'PNG')\n"
         "result = answer(c.post('/api/run/run/predict', content=buf.getvalue(), "
         "headers={'content-type': 'image/png'})).json()\n", expect="ok", timeout=slow)
    t.py("attack3-serve", "serve: /api/run/RID/attribution body nested 300,000 deep",
         _APP + "body = b'{\"image\": ' + b'[' * 300000 + b']' * 300000 + b'}'\n"
         "answer(c.post('/api/run/run/attribution', content=body, headers={'content-type': 'application/json'}))\n",
         timeout=slow)
    t.py("attack3-serve", "serve: /api/run/RID/conv body with Infinity",
         _APP + "answer(c.post('/api/run/run/conv', content=b'{\"layer\": \"conv1\", \"ch\": 0, \"y\": Infinity, "
         "\"x\": 0}', headers={'content-type': 'application/json'}))\n", timeout=slow)
    # -- attack3-download
    t.py("attack3-download", "fetch from a mirror streaming forever (published file <= 1 MB)",
         _MIRROR + "f = RemoteFile('img.gz', '0' * 32, raw_size=1 << 20)\n"
         "fetch(RemoteSource('endless', (f,), (url,)), WS/'_o'/'a3-dl', progress=False)\n", timeout=60,
         check="a3:dl-1m")
    t.py("attack3-download", "fetch after a killed download left a stale .part",
         _MIRROR + "import time\nd = WS/'_o'/'a3-dl2'/'endless'\nd.mkdir(parents=True, exist_ok=True)\n"
         "p = d/'.img.gz.00112233aabb.part'\np.write_bytes(b'x' * 4096)\nos.utime(p, (time.time() - 7200,) * 2)\n"
         "f = RemoteFile('img.gz', '0' * 32, raw_size=1 << 16)\ntry:\n"
         "    fetch(RemoteSource('endless', (f,), (url,)), WS/'_o'/'a3-dl2', progress=False)\n"
         "finally:\n    assert not p.exists(), 'the stale part is still there'\n", timeout=60, check="a3:dl-64k")
