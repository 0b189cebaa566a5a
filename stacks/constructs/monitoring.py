"""Alarms, their notification topic and one dashboard, on the bridge's EMF metrics and the functions' own.

The bridge writes one EMF line per connection, task and minute, and one per breakdown value (by ``Reason``,
``State``, ``Outcome``, a second dimension; ``bridge_container.metrics``). Counters are the increase over that
minute, so a metric's ``Sum`` over a minute is the whole service's count for the connection and its ``Average`` or
``Maximum`` is one task's. Alarms watch the deployed connection; connections added later through the Connections
API appear on the dashboard through its search expressions.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from bridge_container.metrics import EMF_NAMESPACE, EmfDimension, EmfName
from bridge_container.states import ConnectionState
from bridge_domain.connection import ConnectionConfiguration
from bridge_domain.deployment import AlarmSettings
from bridge_domain.quotas import PUBLISHES_PER_SEC_PER_CONNECTION
from bridge_domain.registration import RegistrationOutcome
from stacks.constructs.functions import BridgeFunction

# The connection a deployment's file defines (the bridge's DEFAULT_CONNECTION_ID).
DEPLOYED_CONNECTION_ID = "default"
SECS_PER_PERIOD = 60  # the bridge's EMF interval (the task definition sets it): one data point per task a period
PERIOD = Duration.seconds(SECS_PER_PERIOD)
BUFFER_PRESSURE_MINS = 5
DASHBOARD_WIDTH = 24
WIDGET_WIDTH = 8
WIDGET_HEIGHT = 6
REGISTRATION_FAILURES_METRIC = "ThingRegistrationFailures"  # Powertools metric of the registration function
POWERTOOLS_SERVICE_DIMENSION = "service"
AWS_IOT_NAMESPACE = "AWS/IoT"
KEY_DELETION_WINDOW = Duration.days(7)  # the shortest KMS allows


@dataclass(frozen=True, slots=True)
class MonitoredResources:
    """What the alarms and the dashboard look at besides the bridge's own metrics."""

    service: ecs.FargateService
    registration: BridgeFunction
    status_callback: BridgeFunction
    dead_letters: sqs.IQueue


def bridge_metric(name: EmfName, *, statistic: str = "Sum", **extra_dimensions: str) -> cloudwatch.Metric:
    """A metric of the deployed connection (``extra_dimensions``: one breakdown, e.g. ``Reason="buffer_full"``)."""
    return cloudwatch.Metric(
        namespace=EMF_NAMESPACE,
        metric_name=name.value,
        dimensions_map={EmfDimension.CONNECTION.value: DEPLOYED_CONNECTION_ID, **extra_dimensions},
        statistic=statistic,
        period=PERIOD,
    )


def aws_iot_metric(name: str) -> cloudwatch.Metric:
    """An account-wide AWS IoT Core broker metric for MQTT (WSS included), summed over a period."""
    return cloudwatch.Metric(
        namespace=AWS_IOT_NAMESPACE,
        metric_name=name,
        dimensions_map={"Protocol": "MQTT"},
        statistic="Sum",
        period=PERIOD,
    )


def _search(name: EmfName, statistic: str, *dimensions: EmfDimension) -> cloudwatch.MathExpression:
    """Every series of ``name`` with exactly these dimensions: each connection (and breakdown value) a line."""
    keys = ",".join((EMF_NAMESPACE, EmfDimension.CONNECTION.value, *(d.value for d in dimensions)))
    return cloudwatch.MathExpression(
        expression=f"SEARCH('{{{keys}}} MetricName=\"{name.value}\"', '{statistic}', {SECS_PER_PERIOD})",
        using_metrics={},
        period=PERIOD,
    )


class BridgeMonitoring(Construct):
    """An encrypted alarm topic (optionally mailed), the alarms of ``AlarmSettings`` and the bridge's dashboard."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: AlarmSettings,
        configuration: ConnectionConfiguration,
        resources: MonitoredResources,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = self._topic(settings.email)
        self.alarms: list[cloudwatch.Alarm] = []
        self._bridge_alarms(settings)
        self._function_alarms(resources, settings)
        for alarm in self.alarms:
            alarm.add_alarm_action(actions.SnsAction(self.topic))
            alarm.add_ok_action(actions.SnsAction(self.topic))
        self.dashboard = self._dashboard(configuration, resources)

    # --- notifications ------------------------------------------------------------------------------------------
    def _topic(self, email: str | None) -> sns.Topic:
        # CloudWatch cannot use the AWS managed SNS key: alarms publish to a topic encrypted with a key of our own
        # whose policy lets CloudWatch (of this account only) encrypt with it.
        key = kms.Key(
            self,
            "AlarmTopicKey",
            enable_key_rotation=True,
            description="Encrypts the bridge's alarms",
            # Notifications are not kept anywhere: nothing needs the key once the stack is gone.
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=KEY_DELETION_WINDOW,
        )
        stack = Stack.of(self)
        key.grant(
            iam.ServicePrincipal(
                "cloudwatch.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": stack.account}}
            ),
            "kms:Decrypt",
            "kms:GenerateDataKey*",
        )
        topic = sns.Topic(self, "AlarmTopic", display_name="aws-iot-bridge alarms", master_key=key, enforce_ssl=True)
        if email is not None:
            topic.add_subscription(subscriptions.EmailSubscription(email))
        return topic

    # --- alarms -------------------------------------------------------------------------------------------------
    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        *,
        description: str,
        threshold: float = 1,
        periods: int = 1,
        comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            datapoints_to_alarm=periods,
            comparison_operator=comparison,
            treat_missing_data=missing,
            alarm_description=description,
        )
        self.alarms.append(alarm)
        return alarm

    def _bridge_alarms(self, settings: AlarmSettings) -> None:
        if settings.low_uplinks_per_min > 0:
            # No data means no task reports: as bad as no uplinks.
            self._alarm(
                "LowUplinkRate",
                bridge_metric(EmfName.UPLINKS_ACCEPTED),
                threshold=settings.low_uplinks_per_min,
                periods=settings.low_uplinks_window_mins,
                comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                missing=cloudwatch.TreatMissingData.BREACHING,
                description=f"Fewer than {settings.low_uplinks_per_min} accepted uplinks a minute for "
                f"{settings.low_uplinks_window_mins} minutes: check the network server's connection settings and "
                "the load balancer.",
            )
        self._alarm(
            "UplinksDropped",
            bridge_metric(EmfName.UPLINKS_DROPPED),
            description="Accepted uplinks were not published (see the dashboard's drops by reason and the logs).",
        )
        self._alarm(
            "IngressAuthenticationFailures",
            bridge_metric(EmfName.INGRESS_UNAUTHORIZED),
            description="Requests to the ingress were refused for their credentials (ThingPark Token or time, "
            "bearer token): a network server with a wrong key, or someone probing the load balancer.",
        )
        self._alarm(
            "MqttAuthenticationFailures",
            bridge_metric(EmfName.MQTT_CLIENTS, statistic="Maximum", State=ConnectionState.AUTHENTICATION_FAILED.value),
            description="AWS IoT Core refused the bridge's MQTT clients: certificate inactive or not attached to "
            "the policy, or the task role lacks iot:Connect (WSS).",
        )
        self._alarm(
            "UplinkBufferFull",
            bridge_metric(EmfName.UPLINKS_REJECTED, Reason="buffer_full"),
            description="Uplinks were refused with 429: a task's buffer was full because its pool publishes at the "
            "per-connection rate limit. Raise maxTasks (within the account quotas) or the pool's rates.",
        )
        pressure = cloudwatch.MathExpression(
            expression="100 * depth / MAX([capacity, 1])",
            using_metrics={
                "depth": bridge_metric(EmfName.BUFFER_DEPTH, statistic="Maximum"),
                "capacity": bridge_metric(EmfName.BUFFER_CAPACITY, statistic="Maximum"),
            },
            label="Fullest task's uplink buffer (%)",
            period=PERIOD,
        )
        self._alarm(
            "UplinkBufferPressure",
            pressure,
            threshold=settings.buffer_pressure_percent,
            periods=BUFFER_PRESSURE_MINS,
            description=f"A task's uplink buffer stayed over {settings.buffer_pressure_percent} % full for "
            f"{BUFFER_PRESSURE_MINS} minutes: uplinks arrive faster than the publish quota lets them out.",
        )
        for construct_id, metric_name, what in (
            ("AwsIotPublishThrottles", "PublishIn.Throttle", "publishes"),
            ("AwsIotConnectThrottles", "Connect.Throttle", "connection requests"),
        ):
            self._alarm(
                construct_id,
                aws_iot_metric(metric_name),
                description=f"AWS IoT Core throttled MQTT {what} in this account and region (the bridge's or another "
                "workload's): the account quota is reached. Raise it in Service Quotas, or lower maxTasks.",
            )
        self._alarm(
            "BridgeRegistrationFailures",
            bridge_metric(EmfName.THINGS_REGISTERED, Outcome=RegistrationOutcome.FAILED.value),
            description="The bridge could not register new devices as things (see the registration function).",
        )

    def _function_alarms(self, resources: MonitoredResources, settings: AlarmSettings) -> None:
        throttled_because = {
            "Registration": "its single reserved execution was busy with another task's batch; the bridge retries "
            "those devices on a later uplink, after 5 minutes",
            "StatusCallback": "the account's concurrency was exhausted; SNS retries, then the dead-letter queue",
        }
        for construct_id, function in (
            ("Registration", resources.registration),
            ("StatusCallback", resources.status_callback),
        ):
            self._alarm(
                f"{construct_id}Errors",
                function.function.metric_errors(period=PERIOD, statistic="Sum"),
                description=f"The {function.service_name} function failed (see its log group).",
            )
            self._alarm(
                f"{construct_id}Throttles",
                function.function.metric_throttles(period=PERIOD, statistic="Sum"),
                description=f"The {function.service_name} function was throttled: {throttled_because[construct_id]}.",
            )
        self._alarm(
            "RegistrationFailures",
            self._function_metric(resources.registration, REGISTRATION_FAILURES_METRIC),
            description="CreateThing or AttachThingPrincipal failed for some DevEUIs (see the function's log).",
        )
        self._alarm(
            "StatusDeadLetters",
            resources.dead_letters.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum"),
            threshold=settings.dead_letters,
            description="Status changes the callback could not handle wait in its dead-letter queue.",
        )

    @staticmethod
    def _function_metric(function: BridgeFunction, name: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=EMF_NAMESPACE,
            metric_name=name,
            dimensions_map={POWERTOOLS_SERVICE_DIMENSION: function.service_name},
            statistic="Sum",
            period=PERIOD,
        )

    # --- dashboard ----------------------------------------------------------------------------------------------
    def _dashboard(self, configuration: ConnectionConfiguration, resources: MonitoredResources) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=Duration.hours(3))

        def graph(
            title: str,
            metrics: list[cloudwatch.IMetric],
            *,
            right: list[cloudwatch.IMetric] | None = None,
            left_annotations: list[cloudwatch.HorizontalAnnotation] | None = None,
        ) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(
                title=title,
                left=metrics,
                right=right,
                left_annotations=left_annotations,
                width=WIDGET_WIDTH,
                height=WIDGET_HEIGHT,
            )

        per_connection = cloudwatch.MathExpression(
            expression=f"published / {SECS_PER_PERIOD} / MAX([clients, 1])",
            using_metrics={
                "published": bridge_metric(EmfName.UPLINKS_PUBLISHED),
                "clients": bridge_metric(EmfName.MQTT_CLIENTS, State=ConnectionState.OPENED.value),
            },
            label="Uplink publishes/s per MQTT connection",
            period=PERIOD,
        )
        dashboard.add_widgets(
            graph("Uplinks accepted per connection (per minute)", [_search(EmfName.UPLINKS_ACCEPTED, "Sum")]),
            graph("Uplinks published per connection (per minute)", [_search(EmfName.UPLINKS_PUBLISHED, "Sum")]),
            graph(
                "Downlinks received and sent per connection (per minute)",
                [_search(EmfName.DOWNLINKS_RECEIVED, "Sum"), _search(EmfName.DOWNLINKS_SENT, "Sum")],
            ),
        )
        dashboard.add_widgets(
            graph(
                "Uplinks refused by reason; of them, for credentials",
                [
                    _search(EmfName.UPLINKS_REJECTED, "Sum", EmfDimension.REASON),
                    _search(EmfName.INGRESS_UNAUTHORIZED, "Sum"),
                ],
            ),
            graph(
                "Uplinks dropped by reason; QoS 0 uplinks at risk (written as a connection dropped), in all and by "
                "reason",
                [
                    _search(EmfName.UPLINKS_DROPPED, "Sum", EmfDimension.REASON),
                    _search(EmfName.UPLINKS_AT_RISK, "Sum"),
                    _search(EmfName.UPLINKS_AT_RISK, "Sum", EmfDimension.REASON),
                ],
            ),
            graph(
                "Downlinks failed by reason; feedback not published",
                [
                    _search(EmfName.DOWNLINKS_FAILED, "Sum", EmfDimension.REASON),
                    _search(EmfName.FEEDBACK_DROPPED, "Sum"),
                ],
            ),
        )
        dashboard.add_widgets(
            graph("MQTT clients by state (all tasks)", [_search(EmfName.MQTT_CLIENTS, "Sum", EmfDimension.STATE)]),
            graph(
                "Buffer depth and size (fullest task); downlink queue",
                [
                    _search(EmfName.BUFFER_DEPTH, "Maximum"),
                    _search(EmfName.BUFFER_CAPACITY, "Maximum"),
                    _search(EmfName.DOWNLINK_QUEUE_DEPTH, "Maximum"),
                ],
            ),
            graph(
                "Quota: publishes/s per MQTT connection (deployed connection); AWS IoT throttles (account)",
                [per_connection],
                right=[aws_iot_metric("PublishIn.Throttle"), aws_iot_metric("Connect.Throttle")],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(
                        value=PUBLISHES_PER_SEC_PER_CONNECTION, label="AWS IoT limit per connection"
                    ),
                    cloudwatch.HorizontalAnnotation(
                        value=configuration.per_client_rate_per_sec, label="perClientRatePerSec"
                    ),
                ],
            ),
        )
        registration = resources.registration
        dashboard.add_widgets(
            graph(
                "Registrations by outcome",
                [
                    _search(EmfName.THINGS_REGISTERED, "Sum", EmfDimension.OUTCOME),
                    *(
                        self._function_metric(registration, name)
                        for name in ("ThingsCreated", "ThingsAlreadyRegistered", REGISTRATION_FAILURES_METRIC)
                    ),
                ],
            ),
            graph(
                "Function errors and throttles",
                [
                    metric
                    for bridge_function in (registration, resources.status_callback)
                    for metric in (
                        bridge_function.function.metric_errors(
                            period=PERIOD, label=f"{bridge_function.service_name} errors"
                        ),
                        bridge_function.function.metric_throttles(
                            period=PERIOD, label=f"{bridge_function.service_name} throttles"
                        ),
                    )
                ],
            ),
            graph(
                "Status dead letters and running tasks",
                [
                    resources.dead_letters.metric_approximate_number_of_messages_visible(
                        period=PERIOD, statistic="Maximum", label="dead letters"
                    ),
                ],
                right=[self._running_tasks(resources.service)],
            ),
        )
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="Alarms", alarms=list(self.alarms), width=DASHBOARD_WIDTH, height=WIDGET_HEIGHT
            )
        )
        return dashboard

    @staticmethod
    def _running_tasks(service: ecs.FargateService) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace="ECS/ContainerInsights",
            metric_name="RunningTaskCount",
            dimensions_map={"ClusterName": service.cluster.cluster_name, "ServiceName": service.service_name},
            statistic="Average",
            period=PERIOD,
            label="running tasks",
        )
