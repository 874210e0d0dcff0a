"""Stand-ins for the few ``tests_common.test_utils`` modules of the Airflow repository that the Amazon
provider's system tests import (that package is not in the provider's source distribution). Only what the
system tests use is here; it is put on the ``airflow`` subprocess's PYTHONPATH, never imported by pytest."""
