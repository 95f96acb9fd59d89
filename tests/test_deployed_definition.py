"""What deploy puts on AWS (moto server) holds every governance stage: the gate, the registry,
the approval, the endpoint and the batch transform; the state machine passes statelint."""

from __future__ import annotations

import json

import pytest
from conftest import all_steps, statelint
from moto_server import reset
from test_deploy_cycle import client, deploy

from workflows.render.asl import states as asl_states


@pytest.mark.parametrize("target", ["stepfunctions", "sagemaker"])
def test_deployed_definition_holds_the_governance_stages(moto_server, capsys, target):
    reset(moto_server)
    code, rows = deploy(moto_server, target, capsys=capsys)
    assert code == 0, rows
    groups = client(moto_server, "sagemaker").list_model_package_groups()["ModelPackageGroupSummaryList"]
    assert [g["ModelPackageGroupName"] for g in groups] == ["mlpipe-abalone"]
    if target == "stepfunctions":
        sfn = client(moto_server, "stepfunctions")
        arn = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
        definition = json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"])
        statelint(definition)
        states = asl_states(definition)
        resources = {s.get("Resource") for s in states.values()}
        assert states["evaluate-gate"]["Type"] == "Choice"
        assert states["evaluate-gate-read"]["Resource"] == "arn:aws:states:::aws-sdk:s3:getObject"
        assert states["evaluate-gate-failed"]["Type"] == "Fail"
        assert "arn:aws:states:::aws-sdk:sagemaker:createModelPackage" in resources
        assert states["approve"]["Resource"] == "arn:aws:states:::sns:publish.waitForTaskToken"
        assert states["approve"]["TimeoutSeconds"] == 86400
        assert {"arn:aws:states:::sagemaker:createEndpointConfig", "arn:aws:states:::sagemaker:createEndpoint",
                "arn:aws:states:::sagemaker:updateEndpoint"} <= resources
        assert states["deploy-config"]["Parameters"]["DataCaptureConfig"]["InitialSamplingPercentage"] == 20
        assert states["batch-score"]["Resource"] == "arn:aws:states:::sagemaker:createTransformJob.sync"
    else:
        sm = client(moto_server, "sagemaker")
        definition = json.loads(sm.describe_pipeline(PipelineName="mlpipe-abalone")["PipelineDefinition"])
        steps = {s["Name"]: s for s in all_steps(definition["Steps"])}
        assert steps["evaluate-gate"]["Type"] == "Condition" and steps["evaluate-gate-failed"]["Type"] == "Fail"
        assert steps["register-RegisterModel"]["Type"] == "RegisterModel"
        assert steps["approve"]["Type"] == "Condition"  # the registry's approval status gates deployment
        # native steps: a fresh EndpointConfig per execution, then create-or-update the endpoint
        config = steps["deploy-config"]
        assert config["Type"] == "EndpointConfig"
        assert config["Arguments"]["EndpointConfigName"] == {"Std:Join": {"On": "-", "Values": [
            "abalone-deploy-cfg", {"Get": "Execution.PipelineExecutionId"}]}}
        assert config["Arguments"]["DataCaptureConfig"]["InitialSamplingPercentage"] == 20
        assert config["Arguments"]["ProductionVariants"][0]["ModelName"] == {"Get": "Steps.create-model-CreateModel.ModelName"}
        assert steps["deploy"] == {"Name": "deploy", "Type": "Endpoint", "Arguments": {
            "EndpointName": "mlpipe-abalone", "EndpointConfigName": {"Get": "Steps.deploy-config.EndpointConfigName"},
            "Tags": []}}
        approve_if = [s["Name"] for s in steps["approve"]["Arguments"]["IfSteps"]]
        assert approve_if == ["deploy-config", "deploy"]     # only an Approved package deploys in the run
        assert steps["batch-score"]["Type"] == "Transform"
