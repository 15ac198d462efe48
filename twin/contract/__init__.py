"""The PumpTwin MQTT contract: topics, messages, delivery rules. Shared by every producer and consumer."""

from twin.contract.alarms import ALARM_CATALOGUE, AlarmCode, DeviceAlarmClass, Priority
from twin.contract.codec import CHANNELS, ContractError, decode_command, decode_device_message, encode
from twin.contract.messages import CONTRACT_VERSION
from twin.contract.topics import Channel, TopicAddress, TopicError, build_topic, parse_topic, subscription

__all__ = [
    "ALARM_CATALOGUE",
    "CHANNELS",
    "CONTRACT_VERSION",
    "AlarmCode",
    "Channel",
    "ContractError",
    "DeviceAlarmClass",
    "Priority",
    "TopicAddress",
    "TopicError",
    "build_topic",
    "decode_command",
    "decode_device_message",
    "encode",
    "parse_topic",
    "subscription",
]
