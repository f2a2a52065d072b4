"""Learn an edge detector: a 3 x 3 kernel (and a bias) that reproduces a Sobel filter.

The training pairs are random pictures of rectangles (the input) and what the
Sobel filter makes of them (the target). Starting from a random kernel, plain
gradient descent on the mean squared error, with ``conv2d`` for the forward
pass and ``conv2d_backward`` for the gradients, finds the Sobel kernel again:

    python examples/train_edge_detector.py
    python examples/train_edge_detector.py --size 24 --images 4 --steps 150   # a few seconds

It prints the loss as it falls, then the kernel it learned beside Sobel's.
"""
import argparse

import numpy as np

from convolution import conv2d, conv2d_backward, get_kernel


def rectangles(rng, count, size):
    """``count`` pictures of ``size`` x ``size``: overlapping flat rectangles, plus noise."""
    images = np.zeros((count, size, size))
    for image in images:
        for _ in range(6):
            top, left = rng.integers(0, size - 2, size=2)
            height, width = rng.integers(2, size // 2 + 2, size=2)
            image[top:top + height, left:left + width] = rng.uniform(-1, 1)
    return images + 0.25 * rng.standard_normal(images.shape)


def train(images, targets, steps, learning_rate, rng, report_every):
    """Gradient descent on mean((conv2d(x, k) + b - target)^2); returns the kernel and bias."""
    kernel, bias = 0.1 * rng.standard_normal((3, 3)), 0.0
    for step in range(steps + 1):
        residual = conv2d(images, kernel, padding=1, padding_mode="replicate", bias=bias) - targets
        loss = np.mean(residual ** 2)
        if step % report_every == 0 or step == steps:
            print(f"step {step:4d}  loss {loss:.3e}")
        if step == steps:
            break
        # d loss / d output = 2 * residual / cells; conv2d_backward passes it on.
        _, grad_kernel, grad_bias = conv2d_backward(2 * residual / residual.size, images, kernel,
                                                    padding=1, padding_mode="replicate")
        kernel -= learning_rate * grad_kernel
        bias -= learning_rate * grad_bias
    return kernel, bias


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="pixels a side (default 64)")
    parser.add_argument("--images", type=int, default=16, help="training pairs (default 16)")
    parser.add_argument("--steps", type=int, default=300, help="descent steps (default 300)")
    parser.add_argument("--learning-rate", type=float, default=0.5, help="(default 0.5)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.size < 8 or args.images < 1 or args.steps < 1:
        parser.error("--size must be at least 8, --images and --steps at least 1")

    rng = np.random.default_rng(args.seed)
    sobel = get_kernel("sobel_x")
    images = rectangles(rng, args.images, args.size)
    targets = conv2d(images, sobel, padding=1, padding_mode="replicate")
    kernel, bias = train(images, targets, args.steps, args.learning_rate, rng,
                         max(args.steps // 10, 1))
    with np.printoptions(precision=3, suppress=True):
        print(f"learned kernel (bias {bias:+.4f}):\n{kernel}")
        print(f"sobel_x:\n{sobel}")
    print(f"largest difference from sobel_x: {np.abs(kernel - sobel).max():.2e}")


if __name__ == "__main__":
    main()
