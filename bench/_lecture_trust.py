"""The trust stage's blocks (bench/lecture_tables.py ``render``): bench/results/trust_tables.json -> the markdown
of docs/visualize.md, the audit read against the literature."""

from __future__ import annotations


def _trust_where(d: dict) -> str:
    p = d["provenance"]
    return (f"`bench/trust_tables.py`, `bench/results/trust_tables.json`, commit {p['commit'][:7]}; "
            f"{p['machine']['cores']}-core {p['machine']['cpu']}, torch {p['machine']['torch'].split('+')[0]} CPU")


def _main_model(d: dict) -> str:
    acc = f", {100 * d['test_accuracy']:.2f}%" if d.get("test_accuracy") is not None else ""
    return f"the main job's model (`{d['model']}`, `convscope train --deterministic`{acc})"


def block_trust_visualize_setup(d: dict) -> str:
    v = d["visualize"]
    images = f"the {d['test_images']:,} test images" if "test_images" in d else "the test images"
    return (f"On {_main_model(d)}, `{v['layer']}` channels 0–{v['max']['channels'] - 1}, {v['steps']} steps, "
            f"against {images} ({_trust_where(d)}):")


def block_trust_visualize(d: dict) -> str:
    return d["visualize_table"]


def block_trust_visualize_headline(d: dict) -> str:
    v = d["visualize"]
    mx, mean = v["max"], v["mean"]
    ratio = f" (median ratio {mx['median_ratio']:.2f})" if mx["median_ratio"] is not None else ""
    out = (f"**By the max of each channel's map, the optimized image beats the best test image for {mx['beats']} of "
           f"{mx['channels']} channels{ratio}.**")
    bad = len(mean["natural_nonpositive"])
    if bad:
        out += (f" The `mean` measure's {mean['beats']}/{mean['channels']} is not evidence: `{v['layer']}` is a "
                f"pre-activation (conv before pool, BN and ReLU), its best natural mean is ≤ 0 for {bad} of "
                f"{mean['channels']} channels, and the \"best\" image is shared between channels "
                f"({mean['distinct_natural_images']} distinct images for {mean['channels']} channels): a map average "
                "rewards the image with the least ink, not the feature.")
    return out


def block_trust_audit_setup(d: dict) -> str:
    a = d["audit"]
    return (f"On {_main_model(d)}, the first {a['images']:,} test images, each explaining its predicted class, "
            f"{a['steps']} deletion/insertion steps ({_trust_where(d)}):")


def block_trust_audit(d: dict) -> str:
    return d["audit"]["table"]


def block_trust_gradcam(d: dict) -> str:
    g = d["gradcam"]
    new, old = g["gradcam @ default"], g["gradcam @ last conv"]
    return (f"- Grad-CAM runs at the activation after the last conv block (`{new['layer']}` here; chosen from the "
            f"forward pass, see below), where its maps are non-zero for {100 * new['nonzero_fraction']:.0f}% of the "
            f"first {new['images']} test images; at the last conv's output (`{old['layer']}`, pre-BN: the old "
            f"default) {100 * old['constant_fraction']:.0f}% of them were all-zero.")


# What Adebayo et al. 2018 ("Sanity checks for saliency maps") saw under cascading model randomization: True = the
# map changed (passes), False = it stayed (fails). Deconvnet and occlusion were not in their study.
ADEBAYO = {"saliency": True, "smoothgrad": True, "gradcam": True, "integrated_gradients": False,
           "guided_backprop": False, "guided_gradcam": False}
WHY_DIFFERS = {
    "smoothgrad": "on 28 × 28 digits the noise-averaged gradient of a random network still follows the strokes, and "
                  "our threshold is a number where they judged by eye",
    "guided_gradcam": "the rank correlation of |map| follows the Grad-CAM factor, which changes with the weights, "
                      "although the guided-backprop factor is the part they showed to be input-driven",
}


def block_trust_audit_reading(d: dict) -> str:
    """The audit read against the literature, each claim worded from the table it sits under."""
    a = {m["method"]: m for m in d["audit"]["methods"]}

    def rank(name: str) -> str:
        m = a[name]
        return (f"{m['randomization'][0]['spearman']:.2f} after the output layer is re-drawn, "
                f"{m['randomization_score']:.2f} over the top half")

    def outcome(name: str) -> str:
        return ("passes" if a[name]["passes_randomization"] else "fails") + f" ({rank(name)})"

    def names(ns: list[str]) -> str:
        return ", ".join(f"`{n}`" for n in ns)

    agree = [n for n in ADEBAYO if n in a and a[n]["passes_randomization"] == ADEBAYO[n]]
    differ = [n for n in ADEBAYO if n in a and a[n]["passes_randomization"] != ADEBAYO[n]]
    lines = []
    if agree:
        text = "; ".join(f"`{n}` {outcome(n)}" for n in agree)
        lines.append(f"- **Agrees with Adebayo et al. 2018** on {len(agree)} of {len(agree) + len(differ)} methods "
                     f"they tested: {text}.")
        if "integrated_gradients" in agree:
            lines[-1] += (" Integrated gradients' map is gradient × (input − baseline), and that factor keeps the "
                          "digit's shape whatever the weights (their \"gradient ⊙ input\" finding).")
    if differ:
        parts = [f"`{n}` {outcome(n)}, where they saw the map {'change' if ADEBAYO[n] else 'stay'}"
                 + (f": {WHY_DIFFERS[n]}" if n in WHY_DIFFERS else "") for n in differ]
        lines.append("- **Differs**: " + "; ".join(parts) + ".")
    if "deconvnet" in a:
        lines.append(f"- Deconvnet, which they did not test, {outcome('deconvnet')}"
                     + ("; like guided backprop it largely reconstructs the input (Nie et al. 2018)."
                        if not a["deconvnet"]["passes_randomization"] else "."))
    methods = [m for m in d["audit"]["methods"] if not m["control"]]
    faithful = [m["method"] for m in methods if m["passes_faithfulness"]]
    img = a.get("control: image")
    vs_img = {m["method"]: m["versus_controls"]["control: image"]["ci95"] for m in methods
              if "control: image" in m["versus_controls"]}
    beat = [n for n, (lo, hi) in vs_img.items() if lo > 0]
    below = [n for n, (lo, hi) in vs_img.items() if hi < 0]
    tie = [n for n in vs_img if n not in beat and n not in below]
    controls_trusted = [m["method"] for m in d["audit"]["methods"] if m["control"] and m["trusted"]]
    trusted = [m["method"] for m in methods if m["trusted"]]
    every = "every model-dependent method" if len(faithful) == len(methods) else \
        f"{len(faithful)} of the {len(methods)} model-dependent methods"
    text = (f"- **Faithfulness against Petsiuk et al. 2018**: {every} beats a random pixel order (CI above 0)")
    if img:
        f = img["faithfulness"]
        text += (f", but on digits the input image itself is a strong order (insertion − deletion AUC "
                 f"{f['insertion_auc'] - f['deletion_auc']:.3f}, {f['vs_random']['mean']:+.3f} over a random order): "
                 "the class evidence *is* the ink. ")
        text += (names(beat) + f" beat{'s' if len(beat) == 1 else ''} it (paired 95% CI above 0). " if beat
                 else "No method beats it (paired 95% CI above 0). ")
        if below:
            text += f"{names(below)} rank pixels less usefully than \"ink first\" (CI below 0). "
        if tie:
            text += f"{names(tie)}: not distinguishable from it (CI spans 0). "
        text += ("On natural images (their setting) intensity is no such shortcut, so this control matters more on "
                 "MNIST-like data than the paper suggests.")
    lines.append(text)
    lines.append(f"- Trusted by all three rules: {names(trusted) if trusted else 'no method'}; "
                 + ("no control is trusted (a control ignores the model)." if not controls_trusted else
                    f"**a control is trusted** ({names(controls_trusted)}): the audit is broken."))
    return "\n".join(lines)
