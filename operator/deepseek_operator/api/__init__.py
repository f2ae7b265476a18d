"""The `DeepSeekDeployment` API: models, vocabulary and cross-field rules."""

from deepseek_operator.api.v1alpha1 import (
    DeepSeekDeployment,
    DeepSeekDeploymentSpec,
    DeepSeekDeploymentStatus,
)

__all__ = ["DeepSeekDeployment", "DeepSeekDeploymentSpec", "DeepSeekDeploymentStatus"]
