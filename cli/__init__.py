"""The ``diqkd`` command line (installed as the package ``diqkd_cli``): thin over the library."""
