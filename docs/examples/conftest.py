"""Register the examples with radbench: this hook is all a project needs (no edit to radbench)."""

from fixtures import PLUGINS as pytest_plugins  # noqa: F401 - radbench's pytest plugin


def pytest_radbench_register(registry):
    from my_dataset import WARD_CXR
    from my_module import SMALL_CNN
    from my_protocol import CENTROID
    from my_timm_model import DEIT_S16

    registry.add_model(DEIT_S16)
    registry.add_model(SMALL_CNN)
    registry.add_dataset(WARD_CXR)
    registry.add_protocol(CENTROID)
