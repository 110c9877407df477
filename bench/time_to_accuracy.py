"""Time to accuracy: our `fast` recipe beside PyTorch's and Keras's MNIST example recipes (see
convscope/benchmark.py for what is measured and how). Writes bench/results/time_to_accuracy.json.

    python bench/time_to_accuracy.py [--seeds 3] [--datasets fashion-mnist digits] [--recipes ...]
"""

from pathlib import Path

from convscope.benchmark import main

if __name__ == "__main__":
    main(default_out=Path(__file__).parent / "results" / "time_to_accuracy.json")
