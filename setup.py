"""The one thing pyproject.toml cannot say: the optional C extension `userctl._sha256`
(src/userctl/_sha256.c, linked to OpenSSL's libcrypto). `optional=True`: where there is no C
compiler or no OpenSSL headers, the build says so and the package installs without it, and
`userctl.hexdigest` answers with hashlib (the same answers, slower)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "userctl._sha256",
            sources=["src/userctl/_sha256.c"],
            libraries=["crypto"],
            optional=True,
        )
    ]
)
