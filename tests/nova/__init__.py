# Green threads before anything imports oslo.db, as in Nova's functional
# test package (see secmig/nova/cloud.py).
from nova import monkey_patch; monkey_patch.patch()  # noqa: E702
