from phnn.data.l3das21 import L3DAS21DataModule
