"""An MLP on scikit-learn's 8x8 digits (bundled with fivefold.grad) to >= 97% test accuracy.

Run: python examples/grad/digits_mlp.py
"""

from __future__ import annotations

from typing import Any

from fivefold.grad.demo import train_digits


def main(epochs: int = 25) -> dict[str, Any]:
    accuracy, losses = train_digits(epochs=epochs)
    return {"accuracy": accuracy, "losses": losses}


if __name__ == "__main__":
    result = main()
    print(
        f"test accuracy {result['accuracy']:.2%}; "
        f"loss {result['losses'][0]:.3f} -> {result['losses'][-1]:.3f}"
    )
