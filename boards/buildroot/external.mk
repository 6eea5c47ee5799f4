include $(sort $(wildcard $(BR2_EXTERNAL_VARTA_PATH)/package/*/*.mk))
