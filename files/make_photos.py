"""The filtered versions of the sample photo in files/: how each is made, and a way to remake them.

    python files/make_photos.py          # into out/ (made if needed)
    python files/make_photos.py files    # the committed pictures, remade in place

Each picture is `apply_filter_to_image` on ``files/grace_hopper.jpg``, the
same filters as the README's ``convolution filter`` commands, saved as JPEG
by imageio (Pillow, quality 75):

- ``grace_hopper_blurred.jpg``: gaussian 9 x 9, sigma 3;
- ``grace_hopper_sharpened.jpg``: sharpen;
- ``grace_hopper_edges.jpg``: outline with dilation 2, on the photo blurred
  by the default 5 x 5 gaussian first (rounded to 8 bits in between, as
  the README's commands do through ``out/smooth.png``): an edge detector on
  its own picks up every speck of JPEG noise.

They are computed with ``method='direct'``, which adds the taps one by one
in the same order on every machine, so the pictures come out the same
everywhere (with the same JPEG encoder). The command line takes 'auto',
the fastest path for the machine, whose float32 sums can differ in the last
bits; a smoothed value then and again rounds to the other level, and the
outline kernel multiplies that one level by 8: the README's commands can
give an edge picture a few hundred pixels apart from this one.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run from a checkout
from convolution import apply_filter_to_image  # noqa: E402

HERE = Path(__file__).resolve().parent
PHOTO = HERE / "grace_hopper.jpg"


def filtered(photo):
    """``{file name: picture}``, each filtered from ``photo`` as the module's docstring says."""
    def apply(image, kernel, **params):
        return apply_filter_to_image(image, kernel, method="direct", **params)

    return {
        "grace_hopper_blurred.jpg": apply(photo, "gaussian", size=9, sigma=3),
        "grace_hopper_sharpened.jpg": apply(photo, "sharpen"),
        "grace_hopper_edges.jpg": apply(apply(photo, "gaussian"), "outline", dilation=2),
    }


def main(argv=None):
    import imageio.v3 as iio

    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or args[:1] in (["-h"], ["--help"]):
        print(__doc__.split("\n\n")[1])
        return 0 if args[:1] in (["-h"], ["--help"]) else 2
    folder = Path(args[0] if args else "out")
    folder.mkdir(parents=True, exist_ok=True)
    for name, picture in filtered(iio.imread(PHOTO)).items():
        iio.imwrite(folder / name, picture)
        print(f"wrote {folder / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
