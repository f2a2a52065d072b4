"""Train a tiny CNN on scikit-learn's 8 x 8 digits, with conv2d and conv2d_backward only.

Two convolution layers with ReLU, then a third whose 4 x 4 kernel covers the
whole 4 x 4 feature map: a dense layer written as a convolution, giving the
ten digits' scores. Trained with mini-batch gradient descent with momentum
on the softmax cross-entropy; every gradient comes from ``conv2d_backward``.

    python examples/train_digits.py                          # about 97 % on held-out digits
    python examples/train_digits.py --epochs 3 --channels 4  # seconds

The 1,797 digits ship with scikit-learn (no download); without it, the
example says so and stops.
"""
import argparse
import sys

import numpy as np

from convolution import conv2d, conv2d_backward


def load(seed, test_fraction=0.25):
    """The digits as float32 (N, 1, 8, 8) images, standardised, split into train and test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    images = digits.images.astype(np.float32)[:, np.newaxis]
    images = (images - images.mean()) / images.std()
    return train_test_split(images, digits.target, test_size=test_fraction, random_state=seed,
                            stratify=digits.target)


def initial_weights(rng, channels):
    """He-initialised kernels (fan-in scaled) and zero biases, float32."""
    shapes = {"w1": (channels, 1, 3, 3), "w2": (2 * channels, channels, 3, 3),
              "w3": (10, 2 * channels, 4, 4)}
    weights = {}
    for name, shape in shapes.items():
        fan_in = np.prod(shape[1:])
        weights[name] = (rng.standard_normal(shape) * np.sqrt(2 / fan_in)).astype(np.float32)
        weights["b" + name[1:]] = np.zeros(shape[0], np.float32)
    return weights


def forward(weights, images):
    """The scores (N, 10), and what the backward pass needs."""
    h1 = np.maximum(conv2d(images, weights["w1"], padding=1, bias=weights["b1"]), 0)
    h2 = np.maximum(conv2d(h1, weights["w2"], stride=2, padding=1, bias=weights["b2"]), 0)
    scores = conv2d(h2, weights["w3"], bias=weights["b3"])       # (N, 10, 1, 1)
    return scores[:, :, 0, 0], (images, h1, h2)


def backward(weights, saved, grad_scores):
    """The gradients of the loss with respect to every weight, layer by layer, from the top."""
    images, h1, h2 = saved
    grads = {}
    grad_h2, grads["w3"], grads["b3"] = conv2d_backward(grad_scores[:, :, None, None], h2,
                                                        weights["w3"])
    grad_h2 *= h2 > 0                                              # through the ReLU
    grad_h1, grads["w2"], grads["b2"] = conv2d_backward(grad_h2, h1, weights["w2"], stride=2,
                                                        padding=1)
    grad_h1 *= h1 > 0
    _, grads["w1"], grads["b1"] = conv2d_backward(grad_h1, images, weights["w1"], padding=1)
    return grads


def cross_entropy(scores, labels):
    """The mean softmax cross-entropy and its gradient with respect to the scores."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    rows = np.arange(len(labels))
    loss = -np.mean(np.log(probabilities[rows, labels] + 1e-12))
    grad = probabilities
    grad[rows, labels] -= 1
    return loss, grad / len(labels)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="passes over the data (default 10)")
    parser.add_argument("--channels", type=int, default=8,
                        help="channels of the first layer; the second has twice as many "
                             "(default 8)")
    parser.add_argument("--batch", type=int, default=32, help="mini-batch size (default 32)")
    parser.add_argument("--learning-rate", type=float, default=0.05, help="(default 0.05)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if min(args.epochs, args.channels, args.batch) < 1:
        parser.error("--epochs, --channels and --batch must be at least 1")
    try:
        train_x, test_x, train_y, test_y = load(args.seed)
    except ImportError:
        print("train_digits.py needs scikit-learn for its digits (pip install scikit-learn); "
              "skipped", file=sys.stderr)
        return 0

    rng = np.random.default_rng(args.seed)
    weights = initial_weights(rng, args.channels)
    velocity = {name: np.zeros_like(value) for name, value in weights.items()}
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(train_x))
        losses = []
        for start in range(0, len(order), args.batch):
            batch = order[start:start + args.batch]
            scores, saved = forward(weights, train_x[batch])
            loss, grad_scores = cross_entropy(scores, train_y[batch])
            losses.append(loss)
            for name, grad in backward(weights, saved, grad_scores).items():
                velocity[name] = 0.9 * velocity[name] - args.learning_rate * grad
                weights[name] += velocity[name]
        accuracy = np.mean(forward(weights, test_x)[0].argmax(axis=1) == test_y)
        print(f"epoch {epoch:2d}  training loss {np.mean(losses):.4f}  "
              f"test accuracy {accuracy:.3f}")
    print(f"test accuracy {accuracy:.3f} on {len(test_y)} digits the network never saw")
    return 0


if __name__ == "__main__":
    sys.exit(main())
